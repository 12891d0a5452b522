-- Messages stored without a blob of their own: the postacert.eml of a complete delivery receipt
-- is byte-exactly the part the receipt carries, so its bytes are read from the receipt's blob
-- (re-extracted with package pec and checked against sha256) instead of being written twice.
-- contained_in is the SHA-256 of the message whose blob carries the bytes; NULL when the message
-- has a blob of its own. Where the bytes live is not evidence: it is outside the evidence digest
-- of the log leaf, and the audit re-extracts and re-hashes, so a wrong value is reported.
ALTER TABLE messages ADD COLUMN contained_in bytea CHECK (octet_length(contained_in) = 32);
