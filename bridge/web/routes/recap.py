"""The recap of a period, as a page and as CSV."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response

from bridge.reports.recap import month_of, page_csv, recap_of_days
from bridge.web.page import (
    RECAP_FIRST_DAY,
    RECAP_LAST_DAY,
    PageBase,
    PageError,
)


class RecapRoutes(PageBase):
    # -- recap -----------------------------------------------------------------------

    def _period(self, request: Request) -> tuple[date, date, str | None, int]:
        """The recap's period, or this month with the problem and the status to answer
        (400 a date that is none, 422 a range that cannot be: reversed, or so far out that
        the time zone arithmetic would overflow)."""
        today = self.now().astimezone(ZoneInfo(self.tz)).date()
        default = month_of(today)
        q = request.query_params
        try:
            start = date.fromisoformat(q["dari"]) if q.get("dari") else default[0]
            end = date.fromisoformat(q["sampai"]) if q.get("sampai") else default[1]
        except ValueError:
            return (*default, "Tanggal tidak sah: gunakan format TTTT-BB-HH. Ditampilkan "
                    "bulan ini.", 400)
        if end < start:
            return (*default, "Tanggal akhir sebelum tanggal awal. Ditampilkan bulan ini.",
                    422)
        if start < RECAP_FIRST_DAY or end > RECAP_LAST_DAY:
            return (*default, f"Periode di luar rentang {RECAP_FIRST_DAY.year}–"
                    f"{RECAP_LAST_DAY.year}. Ditampilkan bulan ini.", 422)
        return start, end, None, 200

    def recap_page(self, request: Request) -> Response:
        user = self.require_user(request)
        start, end, problem, status = self._period(request)
        with self.rt.sessions() as s:
            # As of the wall clock, as the recap files are (the page clock is for deadlines).
            figures = recap_of_days(s, self.settings, self.workflow, start, end)
        return self.render(request, "recap.html", {
            "r": figures, "problem": problem,
            "csv_url": "/rekap.csv?" + urlencode({"dari": start.isoformat(),
                                                  "sampai": end.isoformat()}),
        }, status=status, user=user)

    def recap_csv(self, request: Request) -> Response:
        self.require_user(request)
        start, end, problem, status = self._period(request)
        if problem:
            raise PageError(status, "Periode tidak sah", problem)
        with self.rt.sessions() as s:
            figures = recap_of_days(s, self.settings, self.workflow, start, end)
        name = f"rekap-{start.isoformat()}-{end.isoformat()}.csv"
        return Response(page_csv(figures), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"',
                                 "Cache-Control": "no-store"})

