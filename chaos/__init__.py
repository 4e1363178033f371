"""`python -m chaos`: the service under load from simulated users while faults
are injected on a seeded schedule, then an audit of every acknowledged
message and every delivered event (see docs/reliability.md).

Modules: `service` starts the service the README way and knows its
processes; `faults` injects each kind of fault on a schedule; `ledger`
records what clients sent, were told and received; `streams` checks each
socket's events per chat as they come; `users` are the simulated clients;
`audit` compares the ledger with what Redis finally holds; `report` prints
it. Never imported by the service.
"""
