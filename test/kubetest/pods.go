package kubetest

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SetPodRunning writes the status a kubelet would for a started, ready Pod:
// phase Running, podIP/podIPs = ip, hostIP 10.0.0.1, conditions
// PodScheduled/Initialized/ContainersReady/Ready true, and a running, ready
// status for each container. With no kubelet here, this is how a test gets
// Pods that look alive to code that reads their status (pod IP lookups,
// readiness). It returns the updated Pod.
func (c *Cluster) SetPodRunning(tb testing.TB, ns, name, ip string) *corev1.Pod {
	tb.Helper()
	ctx := context.Background()
	pods := c.client.CoreV1().Pods(ns)
	pod, err := pods.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		tb.Fatalf("kubetest: pod %s/%s: %v", ns, name, err)
	}
	now := metav1.Now()
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = ip
	pod.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	pod.Status.HostIP = "10.0.0.1"
	pod.Status.HostIPs = []corev1.HostIP{{IP: "10.0.0.1"}}
	pod.Status.StartTime = &now
	pod.Status.Conditions = nil
	for _, typ := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{
			Type: typ, Status: corev1.ConditionTrue, LastTransitionTime: now,
		})
	}
	pod.Status.ContainerStatuses = nil
	for _, ctr := range pod.Spec.Containers {
		started := true
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
			Name:    ctr.Name,
			Image:   ctr.Image,
			Ready:   true,
			Started: &started,
			State:   corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	updated, err := pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		tb.Fatalf("kubetest: set pod %s/%s running: %v", ns, name, err)
	}
	return updated
}
