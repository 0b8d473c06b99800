"""XrayBench evaluation: report NLG and clinical metrics, VQA accuracy, grounding, aggregation and reports.

Heavy dependencies (Java scorers, torch) load only when a metric is computed.
"""
