package s3store

// SetListPageSize makes Walk list n keys per request, to test paging.
func (s *Store) SetListPageSize(n int) { s.listPageSize = n }

// SetUnconditional makes Put send PUTs without If-None-Match (benchmarks only: not idempotent).
func (s *Store) SetUnconditional(on bool) { s.unconditional = on }
