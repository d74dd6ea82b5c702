from libs.runtime.app import create_app

from .bootstrap import bootstrap

app = create_app(bootstrap, title="Verification service", description="real-name identity, profile checks, qualifications, badges and disclosure (Art. 5, 8¶1-2, 9).")
