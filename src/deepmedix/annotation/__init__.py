"""Expert review of reasoning: a blinded browser app for physicians and the paper's Table 2 statistics.

``deepmedix review create`` builds a review set (SQLite + images) from two models' prediction files,
``serve`` runs the page, ``results`` computes the table and agreement, and the Label Studio commands move the same
review in and out of Label Studio.
"""
