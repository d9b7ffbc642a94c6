"""Write deploy/k8s/base/prometheusrule.yaml from deploy/prometheus/alerts.yml: one source for the
alerting rules, as a Prometheus Operator PrometheusRule for Kubernetes.

    .venv/bin/python scripts/gen-prometheusrule.py [--runbook-base URL] [--out PATH]

``--runbook-base`` replaces the rules' relative ``runbook_url`` prefix (``docs/``) with where the
docs are published, e.g. ``https://git.example/pledge-ws/blob/main/``. tests/deploy checks that
the committed file is what this script writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
OUT = ROOT / "deploy" / "k8s" / "base" / "prometheusrule.yaml"
HEADER = "# Generated from deploy/prometheus/alerts.yml by scripts/gen-prometheusrule.py: edit those, not this.\n"


def render(rules_text: str, runbook_base: str = "") -> str:
    groups = yaml.safe_load(rules_text)["groups"]
    for group in groups:
        for rule in group["rules"]:
            url = rule.get("annotations", {}).get("runbook_url")
            if url and runbook_base and not url.startswith(("http://", "https://")):
                rule["annotations"]["runbook_url"] = runbook_base.rstrip("/") + "/" + url
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "pledge-ws"},
        "spec": {"groups": groups},
    }
    return HEADER + yaml.safe_dump(rule, sort_keys=False, width=200)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runbook-base", default="", help="prefix for the relative runbook_url (default: keep)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    args.out.write_text(render(RULES.read_text(), args.runbook_base))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
