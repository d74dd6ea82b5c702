from libs.runtime.app import create_app

from . import __doc__ as about
from .api import router
from .bootstrap import bootstrap

app = create_app(bootstrap, title="Credit service", description=about, routers=[router])
