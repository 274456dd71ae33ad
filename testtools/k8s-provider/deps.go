//go:build tools

// The module's generate.go (run by testtools/k8s-provider-build.sh) imports this package; the blank import keeps
// it, and its sums, in go.mod under `go mod tidy`.
package main

import _ "github.com/pulumi/pulumi/pkg/v3/codegen/schema"
