-- For a member: ARGV[2] since, ARGV[3] limit, ARGV[4] epoch ('' for any).
return read_log(KEYS[1], KEYS[3], LOG, PRIOR, CHAT_ID, tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
