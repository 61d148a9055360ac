ALTER TABLE jobs RESET (fillfactor);
ALTER TABLE target_calls RESET (fillfactor);
