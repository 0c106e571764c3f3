// Package e2e is meshlet's end-to-end test: the control plane against a
// real kube-apiserver, and "pods" as network namespaces with their own
// addresses, their traffic captured by iptables and carried between
// meshlet-proxy processes over mutual TLS. Everything is in the _test.go
// files; docs/e2e.md explains the layout and how to run it.
package e2e
