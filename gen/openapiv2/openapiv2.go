// Package openapiv2 holds the REST API's OpenAPI 2.0 document,
// creditledger.swagger.json, which protoc-gen-openapiv2 generates from
// proto/ (make generate), so that ledgerd can serve it from its binary.
//
// This file is the only one in gen/ that no generator writes: go:embed
// cannot reach a file outside the embedding package's directory.
package openapiv2

import _ "embed" // for go:embed

// JSON is the OpenAPI document (creditledger.swagger.json).
//
//go:embed creditledger.swagger.json
var JSON []byte
