from libs.runtime.app import create_app

from . import __doc__ as about
from .api import router
from .bootstrap import bootstrap

app = create_app(bootstrap, title="Enforcement service", description=about, routers=[router])
