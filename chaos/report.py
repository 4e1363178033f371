"""What a chaos run prints: the load held, the faults, the audit, the verdict."""

from collections import Counter

from .api import RETRY_STATUSES
from .audit import Findings
from .faults import Window
from .ledger import Ledger

# Findings that fail the run; the others are reported only.
FAILING = ("lost", "duplicated", "changed", "unexplained", "refused but stored", "gap", "twice", "seq reused",
           "missing at the end", "500", "not JSON", "503 outside a fault", "refused", "other")  # fmt: skip
EXAMPLES_SHOWN = 5


def print_report(title: str, seconds: float, ledger: Ledger, windows: list[Window], findings: Findings) -> bool:
    """Prints the run's table; whether it passed."""
    outcomes = Counter(send.outcome for send in ledger.sends.values())
    served = sum(1 for a in ledger.answers if a.status not in RETRY_STATUSES)
    print(f"\n== {title}")
    print(f"load: {len(ledger.answers):,} HTTP requests in {seconds:.0f} s ({len(ledger.answers) / seconds:.0f}/s), "
          f"{served:,} served; {len(ledger.sends):,} messages sent: {outcomes['acked']:,} acknowledged, "
          f"{outcomes['gave_up']:,} given up, {outcomes['refused']:,} refused")  # fmt: skip
    print(f"sockets: {ledger.events_delivered:,} chat events delivered, {ledger.reconnects:,} reconnects, "
          f"{ledger.resyncs:,} chats re-read after a 410 or resync")  # fmt: skip
    kinds = Counter(window.kind for window in windows)
    print(f"{'fault':<14} {'injected':>8} {'longest outage':>15}  (no good answer from any client)")
    for kind, count in sorted(kinds.items()):
        print(f"{kind:<14} {count:>8} {findings.outages.get(kind, 0.0):>13.2f} s")
    for window in windows:
        print(f"  at {window.start - ledger.started:6.1f} s: {window.kind}, {window.detail}; "
              f"served again after {window.end - window.start:.1f} s")  # fmt: skip
    print("audit:")
    for kind in FAILING:
        print(f"  {kind:<20} {findings.counts.get(kind, 0):>6}")
        for example in findings.examples.get(kind, [])[:EXAMPLES_SHOWN]:
            print(f"      {example}")
    for kind in sorted(findings.counts.keys() - set(FAILING)):
        print(f"  {kind:<20} {findings.counts[kind]:>6}  (reported, not a failure)")
    passed = not any(findings.counts.get(kind) for kind in FAILING)
    print("RESULT:", "PASS: nothing acknowledged was lost, nothing duplicated, no gap, no 500"
          if passed else "FAIL")  # fmt: skip
    return passed
