// Package loadtest holds the loopback load run of the real binaries
// (load_test.go): an application, meshlet-identity, meshlet-destination and
// two meshlet-proxy processes, driven by fortio, comparing the direct path,
// one proxy, and the mesh path (client proxy → HTTP/2 over mTLS → server
// proxy), for HTTP/1.1 and h2c, at 1,000 req/s and at maximum rate.
//
// It is not part of `go test ./...` by default (it takes minutes and wants
// the machine to itself): run it with
//
//	MESHLET_LOADTEST=1 go test ./proxy/loadtest -run TestLoad -v -timeout 30m
//
// with fortio on PATH or in $(go env GOPATH)/bin (go install
// fortio.org/fortio@v1.68.2). MESHLET_LOADTEST_DURATION sets each run's
// length (default 10s).
package loadtest
