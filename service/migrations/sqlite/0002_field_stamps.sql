-- Per-field merge (opt-in): a document that holds a patch keeps its field
-- registers here as JSON text (see src/store/registers.rs); value, clock
-- and writer stay the merged value and the document's stamp. NULL: the
-- document holds no patch and merges as in whole-document mode. The change
-- log keeps the same, so Watch delivers the registers too.
ALTER TABLE documents ADD COLUMN field_stamps TEXT;
ALTER TABLE changes ADD COLUMN field_stamps TEXT;
