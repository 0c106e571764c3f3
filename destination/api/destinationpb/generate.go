// Package destinationpb is the generated code of the destination gRPC API
// (destination.proto); regenerate with `make generate`.
package destinationpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative destination.proto
