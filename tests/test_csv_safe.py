"""The CSV formula guard (bridge.reports.csvsafe): every CSV the bridge writes opens as
text in a spreadsheet, with ',' or ';' as its list separator."""

from __future__ import annotations

import csv
import io

import pytest

from bridge.reports.csvsafe import FORMULA_STARTS, csv_text, safe_cell

INJECTIONS = [
    "=1+1", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "\n=1",
    "  =HYPERLINK(\"http://x\")", "\u00a0=1", "\uff1d1+1", "\uff0b1", "\uff201",
]


@pytest.mark.parametrize("value", INJECTIONS)
def test_cells_that_start_like_a_formula_stay_text(value: str) -> None:
    assert safe_cell(value).lstrip("\t\r\n")[:1] == "'"
    assert safe_cell(value).replace("'", "", 1) == value


def test_a_lone_dash_the_pages_none_is_an_empty_cell() -> None:
    assert safe_cell("-") == ""


@pytest.mark.parametrize("value", ["-5", "+6281234567", "1,5", "12.5", "Perizinan",
                                   "", "a=b", "kasus-12"])
def test_plain_values_are_left_alone(value: str) -> None:
    assert safe_cell(value) == value


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_no_cell_starts_a_formula_whatever_the_list_separator(delimiter: str) -> None:
    hostile = ["a;=1+1", "b,=1+1", "c\t=1+1", "x;@SUM(A1)", 'd";=1+1', "e\n=1+1",
               "f; -2+3", "=1;=2", 'g;"=1+1"', "h;\uff1d1", "Rp 1.000;-"]
    text = csv_text([["kunci", "nilai"], *[["k", v] for v in hostile]])
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=delimiter))
    for row in rows:
        for cell in row:
            assert cell.lstrip(" \u00a0\"")[:1] not in FORMULA_STARTS - {"-"} \
                or cell.strip() == "", (delimiter, cell)
            assert not cell.lstrip(" \u00a0\"").startswith("-") or cell.strip(" \"") == "-", (
                delimiter, cell)
    # Read with the separator it was written with, every value comes back whole, with
    # nothing but a "'" added.
    back = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert [r[1].replace("'", "") for r in back[1:]] == hostile
    assert back[-1][1] == "Rp 1.000;-"  # a lone "-" is no formula


def test_recap_files_and_the_page_csv_share_the_guard() -> None:
    from bridge.reports import recap, render

    # The recap files and the page's /rekap.csv (reports.recap.page_csv) both write
    # through the one guard.
    assert render.csv_text is csv_text and recap.csv_text is csv_text
    assert not hasattr(render, "_cell") and not hasattr(recap, "_cell")
