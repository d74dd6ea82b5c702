from libs.runtime.app import create_app

from .bootstrap import bootstrap

app = create_app(bootstrap, title="Enforcement service", description="violations, measures, complaints and appeals, regulator reports (Art. 14, 18-21).")
