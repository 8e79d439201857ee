"""Built-in JSON agent templates (data only; loaded by `core.manager.TemplateManager`)."""
