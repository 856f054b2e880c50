"""Runbooks: browse them, or open one at a section from an alert link."""

from __future__ import annotations

import streamlit as st

from billing_core.access import Role
from dashboard.formatting import plain
from dashboard.runbooks import console_links, find_section, list_runbooks, read_runbook
from dashboard.signin import require

require(Role.viewer)
st.title("Runbooks")

names = list_runbooks()
wanted = st.query_params.get("runbook", "")
section_anchor = st.query_params.get("section", "")
if not names:
    st.info("No runbooks found in runbooks/.")
    st.stop()

index = names.index(wanted) if wanted in names else names.index("README") if "README" in names \
    else 0
if wanted and wanted not in names:
    st.warning(f"No runbook named “{plain(wanted)}”; showing the index instead.")
name = st.selectbox("Runbook", names, index=index, key=f"runbook_pick_{wanted}")
if name != wanted:  # picked another runbook: the old section belongs to the old one
    st.query_params["runbook"] = name
    st.query_params.pop("section", None)
    section_anchor = ""
markdown = console_links(read_runbook(name) or "", runbook=name)

if section_anchor:
    section = find_section(markdown, section_anchor)
    if section is None:
        st.warning(f"No section “{plain(section_anchor)}” in {name}; showing the whole runbook.")
        st.markdown(markdown)
    else:
        st.info(f"Section **{section.heading}** of the {name} runbook, as the alert links it.")
        st.markdown(section.body)
        with st.expander("The whole runbook"):
            st.markdown(markdown)
else:
    st.markdown(markdown)
