{{- /*
Shared pieces of the control-plane manifests. Each helper gets a Comp:
the Values plus .Name, the component (destination, identity, injector).
*/ -}}

{{- define "labels" -}}
app.kubernetes.io/name: meshlet-{{ .Name }}
app.kubernetes.io/part-of: meshlet
app.kubernetes.io/version: {{ quote .Version }}
meshlet.io/control-plane-component: {{ .Name }}
meshlet.io/control-plane-ns: {{ .Namespace }}
{{- end -}}

{{- define "selector" -}}
meshlet.io/control-plane-component: {{ .Name }}
{{- end -}}

{{- define "image" -}}
{{ .Registry }}/meshlet-{{ .Name }}:{{ .Tag }}
{{- end -}}

{{- /* One Deployment's spec.strategy, replicas and the HA scheduling rules. */ -}}
{{- define "replicas" -}}
replicas: {{ .Replicas }}
revisionHistoryLimit: 5
strategy:
  type: RollingUpdate
  rollingUpdate:
    maxSurge: 1
    maxUnavailable: {{ if .HA }}1{{ else }}0{{ end }}
selector:
  matchLabels:
    {{- include "selector" . | nindent 4 }}
{{- end -}}

{{- define "affinity" -}}
{{- if .HA }}
affinity:
  podAntiAffinity:
    # Never two replicas of a component on one node: a node failure must
    # leave a quorum. Spread over zones when the cluster has them.
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "selector" . | nindent 12 }}
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: topology.kubernetes.io/zone
          labelSelector:
            matchLabels:
              {{- include "selector" . | nindent 14 }}
{{- end }}
{{- end -}}

{{- define "podSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 2103
  runAsGroup: 2103
  fsGroup: 2103
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "containerSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  capabilities:
    drop: ["ALL"]
{{- end -}}

{{- /* Admin port 9990: /metrics, /ready, /live (docs/architecture.md). */ -}}
{{- define "probes" -}}
livenessProbe:
  httpGet:
    path: /live
    port: admin
  initialDelaySeconds: 10
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /ready
    port: admin
  periodSeconds: 5
  failureThreshold: 3
{{- end -}}

{{- define "resources" -}}
resources:
  requests:
    cpu: 100m
    memory: 50Mi
  limits:
    memory: 250Mi
{{- end -}}

{{- define "pdb" -}}
{{- if .HA }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: meshlet-{{ .Name }}
  namespace: {{ .Namespace }}
  labels:
    {{- include "labels" . | nindent 4 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      {{- include "selector" . | nindent 6 }}
{{- end }}
{{- end -}}
