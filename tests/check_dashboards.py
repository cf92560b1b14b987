#!/usr/bin/python3
"""Check the Grafana dashboard, the Prometheus alert rules and compose.yaml (issue 13).

    tests/check_dashboards.py [--metrics SCRAPE] [--names]

Parses dashboards/*.json (Grafana: schema version, panels, data source variable, queries),
dashboards/alerts.yaml and the Prometheus/Grafana provisioning files (YAML: every rule has an
alert, an expression, a severity and a summary); checks every PromQL expression with promtool
(`promtool check rules`, the dashboard's queries as recording rules)
(scripts/install-deps installs it); and `docker-compose config` of compose.yaml
(scripts/install-deps installs docker-compose).

--metrics SCRAPE: also check that every canaryd_* metric the dashboard and the alerts name is a
family that scrape (a /metrics response of canaryd) declares (tests/integration/test_http.sh).
--names: print those names and exit.

Exit status: 0 all good, 1 a check failed, 2 usage error. Uses Debian's python3 (python3-yaml).
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
errors = []


def fail(msg):
    errors.append(msg)


def dashboard_exprs(path):
    """The dashboard's queries (panel targets and variable queries), checking its shape."""
    with open(path) as f:
        d = json.load(f)
    exprs = []
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
        fail(f"{path}: schemaVersion {d.get('schemaVersion')!r}: want 36 or newer (Grafana 9+)")
    if not d.get("uid") or not d.get("title"):
        fail(f"{path}: needs a uid and a title")
    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    ds = variables.get("DS_PROMETHEUS")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        fail(f"{path}: no data source variable DS_PROMETHEUS of type prometheus")
    ids = set()
    for p in d.get("panels", []):
        if p.get("id") in ids:
            fail(f"{path}: panel id {p.get('id')} twice")
        ids.add(p.get("id"))
        gp = p.get("gridPos", {})
        if not all(isinstance(gp.get(k), int) for k in ("h", "w", "x", "y")):
            fail(f"{path}: panel {p.get('title')!r} has no gridPos")
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
            fail(f"{path}: panel {p.get('title')!r} does not use ${{DS_PROMETHEUS}}")
        targets = p.get("targets") or []
        if not targets:
            fail(f"{path}: panel {p.get('title')!r} has no query")
        for t in targets:
            if not t.get("expr"):
                fail(f"{path}: panel {p.get('title')!r}: a target without expr")
            else:
                exprs.append((f"panel {p.get('title')!r}", t["expr"]))
    for name, v in variables.items():
        if v.get("type") == "query":
            q = v.get("definition") or v.get("query", {}).get("query", "")
            m = re.fullmatch(r"label_values\((.*),\s*\w+\)", q.strip())
            if not m:
                fail(f"{path}: variable {name}: not label_values(selector, label): {q!r}")
            else:
                exprs.append((f"variable {name}", m.group(1)))
    return exprs


def alert_exprs(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    exprs = []
    groups = doc.get("groups") if isinstance(doc, dict) else None
    if not groups:
        fail(f"{path}: no groups")
        return exprs
    seen = set()
    for g in groups:
        for r in g.get("rules", []):
            name = r.get("alert")
            if not name or not r.get("expr"):
                fail(f"{path}: a rule without alert or expr: {r}")
                continue
            if name in seen:
                fail(f"{path}: alert {name} twice")
            seen.add(name)
            if r.get("labels", {}).get("severity") not in ("page", "warning"):
                fail(f"{path}: {name}: severity must be page or warning")
            if not r.get("annotations", {}).get("summary"):
                fail(f"{path}: {name}: no summary")
            exprs.append((f"alert {name}", str(r["expr"])))
    return exprs


def names_in(exprs):
    """canaryd_* names in the expressions, histogram series folded into their family."""
    out = set()
    for _, e in exprs:
        for n in re.findall(r"\bcanaryd_[a-zA-Z0-9_]+", e):
            out.add(re.sub(r"_(bucket|sum|count)$", "", n) if n.endswith(("_bucket", "_sum", "_count")) and not n.endswith("_total") else n)
    return out


def families(scrape_path):
    fams = set()
    with open(scrape_path) as f:
        for line in f:
            m = re.match(r"# TYPE (\S+) (\S+)", line)
            if m:
                fams.add(m.group(1))
    return fams


def promtool_check(exprs):
    promtool = shutil.which("promtool")
    if not promtool:
        fail("promtool not installed (scripts/install-deps installs the prometheus package)")
        return
    rules = []
    for i, (where, e) in enumerate(exprs):
        # Grafana's variables as Prometheus would see them once substituted
        e = e.replace("$__rate_interval", "5m").replace("$__interval", "1m")
        e = re.sub(r"\$\w+", ".*", e)
        rules.append({"record": f"check:q{i}", "expr": e})
    with tempfile.TemporaryDirectory() as tmp:
        rf = os.path.join(tmp, "dashboard-rules.yaml")
        with open(rf, "w") as f:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
        for path in (rf, os.path.join(ROOT, "dashboards", "alerts.yaml")):
            r = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
            if r.returncode:
                fail(f"promtool check rules {os.path.basename(path)}:\n{r.stdout}{r.stderr}")
        # prometheus.yml names the rules where compose mounts them: point it at the repo's
        with open(os.path.join(ROOT, "dashboards", "prometheus.yml")) as f:
            conf = yaml.safe_load(f)
        conf["rule_files"] = [os.path.join(ROOT, "dashboards", "alerts.yaml")]
        cf = os.path.join(tmp, "prometheus.yml")
        with open(cf, "w") as f:
            yaml.safe_dump(conf, f)
        r = subprocess.run([promtool, "check", "config", cf], capture_output=True, text=True)
        if r.returncode:
            fail(f"promtool check config dashboards/prometheus.yml:\n{r.stdout}{r.stderr}")
    print(f"promtool: {len(exprs)} dashboard queries and the alert rules are valid PromQL")


def compose_check():
    dc = shutil.which("docker-compose")
    if not dc:
        fail("docker-compose not installed (scripts/install-deps installs it)")
        return
    r = subprocess.run([dc, "-f", os.path.join(ROOT, "compose.yaml"), "config", "-q"],
                       capture_output=True, text=True, cwd=ROOT)
    if r.returncode:
        fail(f"docker-compose config: {r.stderr.strip()}")
    with open(os.path.join(ROOT, "compose.yaml")) as f:
        compose = yaml.safe_load(f)
    for svc in ("prometheus", "grafana", "canaryd"):
        if svc not in compose.get("services", {}):
            fail(f"compose.yaml: no service {svc}")
    for svc in compose.get("services", {}).values():  # every mounted file of the repo exists
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("./") and not os.path.exists(os.path.join(ROOT, src)):
                fail(f"compose.yaml mounts {src}, which does not exist")
    with open(os.path.join(ROOT, "dashboards", "prometheus.yml")) as f:
        prom = yaml.safe_load(f)
    jobs = [j.get("job_name") for j in prom.get("scrape_configs", [])]
    if "canaryd" not in jobs:
        fail("dashboards/prometheus.yml: no scrape job named canaryd (the alerts select it)")


def main(argv):
    scrape = None
    if argv[:1] == ["--metrics"] and len(argv) == 2:
        scrape = argv[1]
    elif argv not in ([], ["--names"]):
        print(__doc__, file=sys.stderr)
        return 2
    exprs = []
    boards = sorted(glob.glob(os.path.join(ROOT, "dashboards", "*.json")))
    if not boards:
        fail("no dashboards/*.json")
    for b in boards:
        exprs += dashboard_exprs(b)
    exprs += alert_exprs(os.path.join(ROOT, "dashboards", "alerts.yaml"))
    for p in glob.glob(os.path.join(ROOT, "dashboards", "**", "*.y*ml"), recursive=True):
        with open(p) as f:
            yaml.safe_load(f)  # raises on a syntax error
    names = names_in(exprs)
    if argv == ["--names"]:
        print("\n".join(sorted(names)))
        return 0
    if scrape:
        fams = families(scrape)
        missing = sorted(n for n in names if n not in fams)
        if missing:
            fail(f"named by the dashboard or the alerts but not exported: {', '.join(missing)}")
        else:
            print(f"all {len(names)} canaryd metrics the dashboard and alerts use are exported")
    else:
        promtool_check(exprs)
        compose_check()
    for e in errors:
        print(f"FAIL: {e}", file=sys.stderr)
    if not errors:
        print(f"ok: {len(boards)} dashboard(s), {len(exprs)} queries, {len(names)} metric names")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
