"""The logic of each state of the state machine, against small Protocols for what it reads and writes."""
