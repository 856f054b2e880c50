"""Links between runbooks open the console's runbook page at the right section."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from dashboard.runbooks import console_links, find_section, list_runbooks, read_runbook


def test_links_to_other_runbooks_and_anchors_become_console_links():
    markdown = (
        "See [the engine](billing-engine.md), [webhooks](payments.md#StripeWebhookEventsFailing)"
        " and [below](#first-15-minutes); [Stripe](https://stripe.com/docs#x) stays.\n"
        "```\ncurl [x](other.md)\n```\n"
    )
    out = console_links(markdown, runbook="slo")
    assert "[the engine](/runbooks?runbook=billing-engine)" in out
    assert "[webhooks](/runbooks?runbook=payments&section=stripewebhookeventsfailing)" in out
    assert "[below](/runbooks?runbook=slo&section=first-15-minutes)" in out
    assert "[Stripe](https://stripe.com/docs#x)" in out
    assert "curl [x](other.md)" in out  # code is shown as written


def test_a_deeper_heading_opens_the_section_that_holds_it():
    markdown = "# T\n\n## Alert A\n\ntext\n\n### Check the queue\n\nmore\n\n## Alert B\n"
    section = find_section(markdown, "check-the-queue")
    assert section is not None and section.heading == "Alert A"
    assert find_section(markdown, "nowhere") is None


@pytest.mark.parametrize("name", list_runbooks())
def test_every_link_in_the_shipped_runbooks_lands_somewhere_real(name):
    names = set(list_runbooks())
    markdown = console_links(read_runbook(name) or "", runbook=name)
    broken = []
    for target in re.findall(r"\]\((/runbooks\?[^)]*)\)", markdown):
        query = parse_qs(urlsplit(target).query)
        runbook = query["runbook"][0]
        section = query.get("section", [None])[0]
        if runbook not in names:
            broken.append(f"{target}: no runbook {runbook}")
        elif section and find_section(read_runbook(runbook) or "", section) is None:
            broken.append(f"{target}: no section {section} in {runbook}")
    assert not broken, broken
