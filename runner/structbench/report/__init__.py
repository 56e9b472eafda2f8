"""Reports rebuilt from a run folder: summary.json, report.md, report.html, CSVs, comparisons."""
