// Package query will answer "prove this was delivered" over gRPC (pecarchive.query.v1): it reads
// the catalog, the blobs and the transparency log, audits every read, and exports evidence bundles
// that an auditor verifies offline.
//
// Nothing is implemented here yet: this package is a placeholder for the query issue.
package query
