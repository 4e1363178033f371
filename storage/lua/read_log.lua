-- For a server process (no membership check): KEYS[1] chat hash, KEYS[2]
-- messages, KEYS[3] log, KEYS[4] prior versions; ARGV[1] chat id, ARGV[2]
-- since, ARGV[3] limit, ARGV[4] epoch ('' for any).
return read_log(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
