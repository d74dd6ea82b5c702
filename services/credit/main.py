from libs.runtime.app import create_app

from .bootstrap import bootstrap

app = create_app(bootstrap, title="Credit service", description="credit levels, graded management and fake-traffic monitoring (Art. 7¶2, 12, 13, 17¶2).")
