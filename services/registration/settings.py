from libs.runtime.settings import ServiceSettings


class Settings(ServiceSettings):
    service: str = "registration"
    port: int = 8001
