// Package identitypb holds the generated gRPC code for the meshlet identity
// API (identity.proto). Regenerate with `make generate`.
package identitypb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative identity.proto
