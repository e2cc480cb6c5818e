package rest

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document of this API, served as /openapi.json.
// It is written by hand and kept exact by the tests, which call every
// operation it documents and check every route is in it.
//
//go:embed openapi.json
var OpenAPI []byte
