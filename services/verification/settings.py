from libs.runtime.settings import ServiceSettings


class Settings(ServiceSettings):
    service: str = "verification"
    port: int = 8002
