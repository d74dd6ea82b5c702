from libs.runtime.settings import ServiceSettings


class Settings(ServiceSettings):
    service: str = "transfer"
    port: int = 8003
