"""The report's sections, one module each; ``cnnbench.report.content.build_document`` puts them in order.

Private to the report package: nothing here is exported from ``cnnbench.report``.
"""
