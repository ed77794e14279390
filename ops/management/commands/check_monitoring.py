from __future__ import annotations

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ops.monitoring import chain
from ops.monitoring.chain.runtime import Urls, runtime_checks
from ops.monitoring.chain.static import STATIC_CHECKS


class Command(BaseCommand):
    help = (
        "Prove the monitoring chain: monitoring/ files parse and pass promtool/amtool, every metric "
        "an alert or panel uses is exported; then (unless --static-only) Prometheus, its targets and "
        "rules, Alertmanager, Grafana, the app's /metrics and fresh dependency checks. "
        "Exit 1 on any FAIL."
    )
    requires_system_checks = []  # it reports problems itself, even with a broken setup

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--static-only", action="store_true", help="Files and definitions only; no servers."
        )
        parser.add_argument("--json", action="store_true", help="Machine-readable output.")
        parser.add_argument("--prometheus-url", default=settings.PROMETHEUS_URL)
        parser.add_argument("--alertmanager-url", default=settings.ALERTMANAGER_URL)
        parser.add_argument("--grafana-url", default=settings.GRAFANA_URL)
        parser.add_argument("--app-url", default=settings.APP_URL)

    def handle(self, *args, **options) -> None:
        checks = list(STATIC_CHECKS)
        if not options["static_only"]:
            urls = Urls(
                options["prometheus_url"],
                options["alertmanager_url"],
                options["grafana_url"],
                options["app_url"],
            )
            checks += runtime_checks(urls)
        results = chain.run(checks)
        if options["json"]:
            self.stdout.write(json.dumps([result.as_json() for result in results], indent=2))
        else:
            self._table(results)
        failed = [result.check for result in results if result.status == chain.FAIL]
        if failed:
            raise CommandError(f"{len(failed)} check(s) failed: {', '.join(failed)}")

    def _table(self, results: list[chain.Result]) -> None:
        # self.style colours only when stdout is a terminal, plain text otherwise.
        styles = {
            chain.PASS: self.style.SUCCESS,
            chain.WARN: self.style.WARNING,
            chain.FAIL: self.style.ERROR,
            chain.SKIP: self.style.NOTICE,
        }
        width = max(len(result.check) for result in results)
        for result in results:
            status = styles[result.status](f"{result.status:<4}")
            self.stdout.write(f"{status}  {result.check:<{width}}  {result.detail}".rstrip())
        counts = {status: sum(r.status == status for r in results) for status in styles}
        self.stdout.write(", ".join(f"{count} {status}" for status, count in counts.items()))
