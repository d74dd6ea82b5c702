from libs.runtime.settings import ServiceSettings


class Settings(ServiceSettings):
    service: str = "credit"
    port: int = 8004
