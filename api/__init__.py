"""The Sanic application: factory, config, blueprints, models, errors."""
