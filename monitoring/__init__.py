"""The monitoring job: a Beam pipeline that scores a stream of market
headlines with the served model, windows sentiment per ticker and for the
market, and raises alerts on negative-sentiment shocks (monitoring/job.py;
its command, `finsent monitor`, is commands/monitor.py)."""
