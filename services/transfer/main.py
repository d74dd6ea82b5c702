from libs.runtime.app import create_app

from .bootstrap import bootstrap

app = create_app(bootstrap, title="Transfer service", description="transfers and privilege grants of accounts (Art. 11, 17¶3).")
