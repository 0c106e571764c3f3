package kubetest

import (
	"path/filepath"
	"strconv"
)

func etcdArgs(dir, clientURL string, peerPort int) []string {
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	return []string{
		"--name=kubetest",
		"--data-dir=" + filepath.Join(dir, "etcd-data"),
		"--listen-client-urls=" + clientURL,
		"--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=kubetest=" + peerURL,
		// The data is thrown away after the test; fsync only costs time.
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	}
}

func apiserverArgs(p *clusterPKI, etcdURL string, port int) []string {
	return []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		// The default reconciler refuses a loopback advertise address; with
		// "none" the "kubernetes" Service simply has no endpoints.
		"--endpoint-reconciler-type=none",
		"--tls-cert-file=" + p.certFile,
		"--tls-private-key-file=" + p.keyFile,
		"--client-ca-file=" + p.caFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=" + Issuer,
		"--service-account-key-file=" + p.saPub,
		"--service-account-signing-key-file=" + p.saKey,
		"--service-cluster-ip-range=" + ServiceCIDR,
		// The injector adds an init container that programs iptables.
		"--allow-privileged=true",
		"--profiling=false",
		"--v=1",
	}
}
