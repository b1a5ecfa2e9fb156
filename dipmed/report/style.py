"""The report pages' stylesheet (inline: the pages load nothing)."""

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto;
  max-width: 1100px; color: #222; line-height: 1.4; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 28px;
  border-bottom: 1px solid #ccc; padding-bottom: 2px; } h3 { font-size: 15px; margin: 14px 0 2px; }
.headline { font-size: 15px; } .note { color: #555; font-size: 13px; margin: 2px 0 8px; }
.ok { background: #e8f5e9; border-left: 4px solid #2e7d32; padding: 8px 12px; }
.warn { background: #fff8e1; border-left: 4px solid #f9a825; padding: 8px 12px; }
.warn ul { margin: 4px 0 0; }
table { border-collapse: collapse; font-size: 13px; margin: 4px 0 8px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
table.kv th { text-align: left; font-weight: normal; color: #555; }
table.kv td { text-align: left; font-family: ui-monospace, monospace; word-break: break-all; }
table.metrics tr > th:first-child { text-align: left; }
.figures { display: flex; flex-wrap: wrap; gap: 8px 28px; }
.figure h3 { margin-top: 6px; } .figure .label { font-size: 12px; color: #333; margin-top: 6px; }
.figure img { display: block; image-rendering: pixelated; background: #000; }
.charts { display: flex; flex-wrap: wrap; gap: 8px 16px; }
.charts svg { border: 1px solid #eee; }
td.bad { background: #fff3e0; }
"""
