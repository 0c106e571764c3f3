//go:build tools

// Package tools pins the modules meshlet depends on while the packages that
// import them are still being written, so `go mod tidy` keeps one agreed set
// of versions for every component.
package tools

import (
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/spf13/cobra"
	_ "github.com/spiffe/go-spiffe/v2/spiffeid"
	_ "golang.org/x/net/http2"
	_ "google.golang.org/grpc"
	_ "google.golang.org/protobuf/proto"
	_ "k8s.io/api/core/v1"
	_ "k8s.io/apimachinery/pkg/apis/meta/v1"
	_ "k8s.io/client-go/kubernetes"
	_ "sigs.k8s.io/yaml"
)
