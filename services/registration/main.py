from libs.runtime.app import create_app

from .bootstrap import bootstrap

app = create_app(bootstrap, title="Registration service", description="the public account and its lifecycle (Art. 2, 6, 7, 8¶3, 10, 11¶3, 15, 17¶2).")
