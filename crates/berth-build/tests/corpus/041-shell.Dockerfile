FROM mcr.microsoft.com/windows/servercore
SHELL ["powershell", "-command"]
