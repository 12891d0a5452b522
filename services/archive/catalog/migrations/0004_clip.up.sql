-- catalog_clip(s, n): the longest prefix of s, in whole characters, of at most n bytes; what the
-- Go side's clean does to an over-long text field. Used by the derivation of deliveries in the
-- server (catalog.deliveriesSQL) for the problem text, which joins the problems of up to four
-- receipts. Each pass drops at most as many characters as there are bytes to drop divided by
-- four (a character is 1 to 4 bytes), and at least one, so it never drops a character that fits.
CREATE FUNCTION catalog_clip(s text, n integer) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
    WHILE octet_length(s) > greatest(n, 0) LOOP
        s := left(s, char_length(s) - greatest(1, (octet_length(s) - n) / 4));
    END LOOP;
    RETURN s;
END $$;
