package s3store

// SetListPageSize makes Walk list n keys per request, to test paging.
func (s *Store) SetListPageSize(n int) { s.listPageSize = n }
