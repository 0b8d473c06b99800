"""Stage 2 data: a teacher writes grounded reasoning that ends in the ground truth; a filter keeps the valid ones.

``synthesize`` runs any teacher (an OpenAI-compatible endpoint, or the offline ``TemplateTeacher``) over a samples
file, caches every teacher reply by content, filters, and writes stage-2 training samples whose ``answer`` is the
full protocol completion. Modules: ``teachers``, ``filter``, ``synthesize``, ``regions``.
"""
