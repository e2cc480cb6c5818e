// Package rest is tock's JSON REST API (docs/rest.md): jobs and rules
// behind bearer-token auth and the line protocol's namespaces, paged job
// listings, job outcomes, and the OpenAPI 3.1 document that describes it
// all (openapi.json, served as /openapi.json and checked against the
// server by the tests).
//
// The package holds no state of its own: a Backend (the master) does the
// work, so the handlers are tested against the real master and against a
// small in-memory backend alike. The HTTP listener mounts the routes with
// Mount.
package rest
