// Package validate checks what meshlet-identity receives from outside: CSRs,
// join token files and ServiceAccount token claims. It depends on nothing
// heavier than go-spiffe's spiffeid, so its fuzz targets run fast (a test
// binary linking client-go and gRPC is too large for coverage-guided
// fuzzing to make progress). Package identity re-exports what others use.
package validate
