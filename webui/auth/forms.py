from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    username = StringField("用户名 Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("密码 Password", validators=[DataRequired(), Length(max=256)])
    remember = BooleanField("记住我 Remember me")
