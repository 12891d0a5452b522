package grpcserver

// Buffered returns the bytes the Store calls of s have reserved from its buffer budget.
func (s *Server) Buffered() int64 { return s.service.budget.usedBytes() }
