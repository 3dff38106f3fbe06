"""Sphinx configuration for the django-jobs documentation."""

project = "django-jobs-queue"
author = "the django-jobs developers"
copyright = "2026, the django-jobs developers"
release = "0.1.0.dev0"

extensions = []
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = []
html_theme_options = {
    "description": "A database job queue for Django's Tasks framework",
    "fixed_sidebar": True,
}
