"""Checks an Autobahn|Testsuite fuzzingclient report (index.json) for scripts/autobahn.

wstest exits 0 even when cases fail, and writes `{}` when it cannot connect, so the
verdicts are checked here: the agent is present, every expected case ran, every case of
1.* to 10.* passed (OK, NON-STRICT or INFORMATIONAL, and a clean close), and the
permessage-deflate cases (12.*, 13.*) are UNIMPLEMENTED. Prints a summary of the
verdicts and every failing case; exits 1 on any failure.

Runs on Python 2.7 (the suite's own interpreter) and 3.

Usage: check.py INDEX_JSON AGENT EXPECTED_CASES [EXCLUDED_ID ...]
"""

from __future__ import print_function

import json
import sys
from collections import Counter

PASSING = ("OK", "NON-STRICT", "INFORMATIONAL")
CLEAN_CLOSE = ("OK", "INFORMATIONAL")


def case_key(case_id):
    return tuple(int(part) for part in case_id.split("."))


def verdict_problem(case_id, result):
    """Why a case's result is not acceptable, or None."""
    behavior = result.get("behavior")
    close = result.get("behaviorClose")
    major = case_key(case_id)[0]
    if major in (12, 13):
        if behavior != "UNIMPLEMENTED":
            return "expected UNIMPLEMENTED (no permessage-deflate), got %s" % behavior
        return None
    if behavior not in PASSING:
        return "behavior %s" % behavior
    if close not in CLEAN_CLOSE:
        return "close %s (remote close code %s)" % (close, result.get("remoteCloseCode"))
    return None


def main(argv):
    if len(argv) < 4:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    path, agent, expected = argv[1], argv[2], int(argv[3])
    excluded = set(argv[4:])
    with open(path) as f:
        index = json.load(f)
    if agent not in index:
        print("autobahn: agent %r missing from %s (did wstest connect?)" % (agent, path))
        return 1
    cases = index[agent]
    failures = []
    for case_id in sorted(cases, key=case_key):
        if case_id in excluded:
            failures.append((case_id, "ran although excluded"))
            continue
        problem = verdict_problem(case_id, cases[case_id])
        if problem:
            failures.append((case_id, problem))
    counts = Counter(r.get("behavior") for r in cases.values())
    summary = ", ".join("%s %d" % (v, n) for v, n in sorted(counts.items()))
    print("autobahn: %d cases (%s); %d excluded" % (len(cases), summary, len(excluded)))
    if len(cases) != expected:
        failures.append(("-", "%d cases ran, expected %d" % (len(cases), expected)))
    for case_id, problem in failures:
        report = cases.get(case_id, {}).get("reportfile", "")
        print("autobahn: FAIL %s: %s %s" % (case_id, problem, report))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
