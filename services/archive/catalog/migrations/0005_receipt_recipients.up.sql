-- A receipt about one recipient (daticert consegna: delivery, non-delivery or warning receipt) is
-- listed in message_recipients under that recipient only (catalog.indexedRecipients); catalogs
-- written before listed it under every recipient its daticert names. Drop those rows.
DELETE FROM message_recipients r
USING messages m
WHERE m.sha256 = r.sha256
  AND m.kind IN ('accettazione', 'non-accettazione', 'presa-in-carico', 'avvenuta-consegna',
                 'errore-consegna', 'preavviso-errore-consegna', 'rilevazione-virus')
  AND m.consegna <> ''
  AND r.recipient <> m.consegna;
