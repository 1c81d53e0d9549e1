from r1kit.threads import prefer_passive_waiting

prefer_passive_waiting()  # before anything imports torch (r1kit.threads)
